.config tiny
.bogus 1, 2
