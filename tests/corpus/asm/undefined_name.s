.config tiny
.queue MEM_E0
        NOP LATER
.equ LATER, 3
