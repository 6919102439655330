.config tiny
.queue MXM_E
        LW E0, 0, 0
