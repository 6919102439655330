.config tiny
.queue VXM0
        REQUANT E0, shift=3 -> E1
