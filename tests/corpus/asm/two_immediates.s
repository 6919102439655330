.config tiny
.queue VXM0
        ADD #1, #2 -> E0
