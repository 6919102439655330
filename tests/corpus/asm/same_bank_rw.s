.config tiny
.queue MEM_E0
        RW 1 -> E0, W0 -> 2
