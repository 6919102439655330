.config tiny
.queue MEM_E0
        FLY 0 -> E0
