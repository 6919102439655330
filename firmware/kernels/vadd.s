; Vector add, saturating int8: z = x + y for 4 vectors of 8 lanes (ulx3s, VL = 8).
;
; Floorplan (ulx3s): MEM_W3 0 | MEM_W2 1 | MEM_W1 2 | MEM_W0 3 | VXM 4 |
;                    MEM_E0 5 | MEM_E1 6 | MEM_E2 7 | MEM_E3 8 | SXM_E 9 | MXM_E 10
; A READ at cycle t is seen h hops away at t + 2 + h (ulx3s holds the read word a cycle:
; mem_read = 2); a VXM op at t emits at t + 3.
;   x: MEM_W1 (2 hops) reads at 0..3 -> E0 at the VXM at 4..7
;   y: MEM_W0 (1 hop)  reads at 1..4 -> E1 at the VXM at 4..7
;   VXM0 adds at 4..7, emits E2 at 7..10 -> MEM_E0 (1 hop) writes at 8..11
; The last HALT is MEM_E0's at cycle 12, so the program takes 12 + T = 16 cycles.
.config ulx3s
.output z, MEM_E0, 0x10, 4, i8

.data   MEM_W1, 0x0, -7, -80, 1, 127, -56, 22, 119, 85
.data   MEM_W1, 0x1, -66, -60, 106, -100, 70, 73, -89, 5
.data   MEM_W1, 0x2, -121, 111, -37, 36, -59, -78, 65, 2
.data   MEM_W1, 0x3, 110, 45, 87, 72, -46, -55, -121, 74
.data   MEM_W0, 0x0, -76, -21, 74, 88, -28, 24, 15, -88
.data   MEM_W0, 0x1, -115, 111, 20, 37, -68, -96, 0, 108
.data   MEM_W0, 0x2, -53, 101, -61, -40, -46, 98, -10, -57
.data   MEM_W0, 0x3, 97, 49, -12, -115, 80, -46, 58, -53

.queue MEM_W1
        READ    0 -> E0
        REPEAT  3, 1, 1
        HALT
.queue MEM_W0
        NOP     1
        READ    0 -> E1
        REPEAT  3, 1, 1
        HALT
.queue VXM0
        NOP     4
        ADDS.i8 E0, E1 -> E2
        REPEAT  3, 1
        HALT
.queue MEM_E0
        NOP     8
        WRITE   E2 -> 0x10
        REPEAT  3, 1, 1
        HALT
