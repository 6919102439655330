.config tiny
.lut 1, 2, 3
