.config tiny
.data MEM_E0, 4, 1, 2, 3, 4
.data MEM_E0, 4, 5
