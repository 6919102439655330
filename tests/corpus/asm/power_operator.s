.config tiny
.queue MEM_E0
        NOP 2 ** 10
