.config tiny
; café in Latin-1
.queue MEM_E0
        NOP 1
