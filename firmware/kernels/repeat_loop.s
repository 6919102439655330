; A Repeat loop over addresses: copy the even words 0, 2, .. 14 of MEM_W0 into
; MEM_E0 in reverse order (0x107 down to 0x100), with address strides +2 and -1 (ulx3s, VL = 8).
;
; Floorplan (ulx3s): MEM_W3 0 | MEM_W2 1 | MEM_W1 2 | MEM_W0 3 | VXM 4 |
;                    MEM_E0 5 | MEM_E1 6 | MEM_E2 7 | MEM_E3 8 | SXM_E 9 | MXM_E 10
;
;   MEM_W0 reads at 0..7 (stride 2) -> E0 at MEM_E0 (2 hops) at 4..11 (a READ at t is seen h
;   hops away at t + 2 + h: ulx3s holds the read word a cycle), written with stride -1.
; The last HALT is MEM_E0's at 12: 12 + T = 16 cycles.
.config ulx3s
.output r, MEM_E0, 0x100, 8, i8

.data   MEM_W0, 0x0, -116, -27, -79, 16, -11, -102, -15, -26
.data   MEM_W0, 0x1, 95, 26, -45, 45, -33, -93, -116, 47
.data   MEM_W0, 0x2, -104, 68, -51, 90, -96, -57, -99, -32
.data   MEM_W0, 0x3, -108, -74, -42, 114, 83, -49, -114, 83
.data   MEM_W0, 0x4, 43, 86, -61, -114, -110, 25, 94, 17
.data   MEM_W0, 0x5, -117, -61, 72, 12, 17, -3, 59, 48
.data   MEM_W0, 0x6, -56, 47, -96, 35, -96, -57, -120, -111
.data   MEM_W0, 0x7, -89, 49, -18, -41, -17, 18, -126, -55
.data   MEM_W0, 0x8, -97, -20, 117, 1, 4, -78, -70, -53
.data   MEM_W0, 0x9, 52, -111, 126, 3, 15, -58, -81, 79
.data   MEM_W0, 0xa, 70, 26, 46, 89, 15, 120, 125, 20
.data   MEM_W0, 0xb, -41, 104, -107, -61, 37, 100, 32, -10
.data   MEM_W0, 0xc, 98, -4, 4, -95, -1, -98, 35, -47
.data   MEM_W0, 0xd, 94, 73, 23, -124, -42, 110, -14, -102
.data   MEM_W0, 0xe, -7, -49, 84, 52, -19, 53, -26, 113
.data   MEM_W0, 0xf, 47, 108, -126, 51, 9, -121, -49, -75

.queue MEM_W0
        READ    0 -> E0
        REPEAT  7, 1, 2
        HALT
.queue MEM_E0
        NOP     4
        WRITE   E0 -> 0x107
        REPEAT  7, 1, -1
        HALT
