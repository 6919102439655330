.config tiny
.queue MEM_E0
        NOP 1 >> -1
