; nothing but a queue
.queue MEM_E0
        NOP 1
