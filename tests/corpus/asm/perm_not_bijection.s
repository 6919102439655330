.config tiny
.perm SXM_E, 0, 0, 0, 1, 2
