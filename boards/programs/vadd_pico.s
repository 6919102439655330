; Vector add, saturating int8: z = x + y for 4 vectors of 2 lanes (pico, VL = 2), the
; program of the iCEBreaker's TSP (`docs/BOARDS.md`).
;
; Floorplan (pico): MEM_W0 0 | VXM 1 | MEM_E0 2 | MXM_E 3
; A READ at cycle t is seen h hops away at t + 1 + h; a VXM op at t emits at t + 3.
;   x: MEM_W0 (1 hop east)  reads at 0..3 -> E0 at the VXM at 2..5
;   y: MEM_E0 (1 hop west)  reads at 0..3 -> W0 at the VXM at 2..5
;   VXM0 adds at 2..5, emits E1 at 5..8 -> MEM_E0 (1 hop) writes at 6..9
; The last HALT is MEM_E0's at cycle 10, so the program takes 10 + T = 12 cycles.
.config pico
.output z, MEM_E0, 0x10, 4, i8

.data   MEM_W0, 0x0, -7, -80
.data   MEM_W0, 0x1, 1, 127
.data   MEM_W0, 0x2, -121, 111
.data   MEM_W0, 0x3, 110, -45
.data   MEM_E0, 0x0, -76, -21
.data   MEM_E0, 0x1, 74, 88
.data   MEM_E0, 0x2, -53, 101
.data   MEM_E0, 0x3, 97, 49

.queue MEM_W0
        READ    0 -> E0
        REPEAT  3, 1, 1
        HALT
.queue VXM0
        NOP     2
        ADDS.i8 E0, W0 -> E1
        REPEAT  3, 1
        HALT
.queue MEM_E0
        READ    0 -> W0
        REPEAT  3, 1, 1
        NOP     2
        WRITE   E1 -> 0x10
        REPEAT  3, 1, 1
        HALT
