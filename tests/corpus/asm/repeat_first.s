.config tiny
.queue MEM_E0
        REPEAT 3, 1, 1
