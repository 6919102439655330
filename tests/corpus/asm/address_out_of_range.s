.config tiny
.queue MEM_E0
        WRITE W0 -> 0x400
