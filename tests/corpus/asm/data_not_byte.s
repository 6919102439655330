.config tiny
.data MEM_E0, 0, 300
