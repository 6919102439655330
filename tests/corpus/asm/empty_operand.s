.config tiny
.queue MEM_E0
        READ 0 -> , E0
