.config tiny
.config ulx3s
