.config tiny
.equ E3, 1
