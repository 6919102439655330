.config tiny
.equ Z, 0
.queue MEM_E0
        NOP 4 // Z
