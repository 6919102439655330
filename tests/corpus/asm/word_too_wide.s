.config tiny
.queue MXM_E
.word 0x1ffffffff
