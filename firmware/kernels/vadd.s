; Vector add, saturating int8: z = x + y for 4 vectors of 16 lanes (ulx3s).
;
; Floorplan (ulx3s): SXM_W 0 | MEM_W3 1 | MEM_W2 2 | MEM_W1 3 | MEM_W0 4 | VXM 5 |
;                    MEM_E0 6 | MEM_E1 7 | MEM_E2 8 | MEM_E3 9 | SXM_E 10 | MXM_E 11
; A READ at cycle t is seen h hops away at t + 1 + h; a VXM op at t emits at t + 3.
;   x: MEM_W1 (2 hops) reads at 0..3 -> E0 at the VXM at 3..6
;   y: MEM_W0 (1 hop)  reads at 1..4 -> E1 at the VXM at 3..6
;   VXM0 adds at 3..6, emits E2 at 6..9 -> MEM_E0 (1 hop) writes at 7..10
; The last HALT is MEM_E0's at cycle 11, so the program takes 11 + T = 15 cycles.
.config ulx3s
.output z, MEM_E0, 0x10, 4, i8

.data   MEM_W1, 0x0, -118, -9, 56, 3, 47, 93, -90, 56, -4, -43, -1, 97, 15, 4, 53, 5
.data   MEM_W1, 0x1, 107, 56, 97, -14, 79, 89, -120, 47, -85, 42, -86, 114, -40, 64, 115, -105
.data   MEM_W1, 0x2, 47, 83, -53, 14, -120, -69, 48, 123, -55, 21, 76, -19, -104, 88, 47, 2
.data   MEM_W1, 0x3, 37, 53, -28, -93, -64, -4, -95, 99, -82, 115, 42, -119, -87, 116, -4, 102
.data   MEM_W0, 0x0, 13, -22, -90, -21, -104, -111, 61, -21, 36, -2, 127, -90, -6, 112, 14, -80
.data   MEM_W0, 0x1, -8, -124, -124, 113, 52, 126, -37, 46, -75, 72, 16, 54, 108, 119, -123, 124
.data   MEM_W0, 0x2, 57, -127, 46, 99, -52, -72, 62, -51, 93, 122, -91, -7, -58, -8, -90, 118
.data   MEM_W0, 0x3, -102, -31, 2, 126, -27, 65, 15, 75, -71, 27, 87, 46, 10, 105, 44, -92

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
        NOP     3
        ADDS.i8 E0, E1 -> E2
        REPEAT  3, 1
        HALT
.queue MEM_E0
        NOP     7
        WRITE   E2 -> 0x10
        REPEAT  3, 1, 1
        HALT
