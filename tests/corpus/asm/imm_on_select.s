.config tiny
.queue VXM0
        SELECT E0, #1, E1 -> E2
