.config tiny
.queue MEM_E7
        NOP 1
