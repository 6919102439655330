.config tiny
.output y, MEM_E0, 0, 1, f32
