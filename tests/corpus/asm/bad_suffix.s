.config tiny
.queue MEM_E0
        READ.i32 0 -> E0
