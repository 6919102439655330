.config tiny
.queue VXM1
        LUT E0 -> E1
