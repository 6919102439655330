.config tiny
.queue MEM_E0
        NOP __import__('os')
