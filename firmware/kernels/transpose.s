; SXM transpose: 4 streams x 4 lanes per tile, turned around (ulx3s, L = 4).
;   result stream i, lane k*4 + j  =  source stream j, lane k*4 + i
;
; Floorplan (ulx3s): SXM_W 0 | MEM_W3 1 | MEM_W2 2 | MEM_W1 3 | MEM_W0 4 | VXM 5 |
;                    MEM_E0 6 | MEM_E1 7 | MEM_E2 8 | MEM_E3 9 | SXM_E 10 | MXM_E 11
;
; Source vector j sits in MEM_E<j> and rides E<j> to SXM_E (10 - pos hops):
;   MEM_E0 reads at 0, MEM_E1 at 1, MEM_E2 at 2, MEM_E3 at 3 -> all at SXM_E at 5.
;   TRANS at 5 emits at 5 + T = 9 westward on W4..W7;
;   MEM_E3 writes W4 at 10, MEM_E2 W5 at 11, MEM_E1 W6 at 12, MEM_E0 W7 at 13.
; The last HALT is MEM_E0's at 14: 14 + T = 18 cycles.
.config ulx3s
.output t0, MEM_E3, 0x10, 1, i8
.output t1, MEM_E2, 0x10, 1, i8
.output t2, MEM_E1, 0x10, 1, i8
.output t3, MEM_E0, 0x10, 1, i8

.data   MEM_E0, 0x0, 108, -11, 64, 18, 101, -24, -11, -80, -85, -44, 55, -56, 69, -36, -83, 58
.data   MEM_E1, 0x0, 62, -77, -54, 99, 15, -16, -101, 77, 15, 48, 96, -26, -64, 34, 99, -49
.data   MEM_E2, 0x0, 4, -95, 64, 76, -92, -46, 88, 6, 86, 30, 111, -36, 57, -61, 61, -13
.data   MEM_E3, 0x0, -70, -85, 99, -108, -115, 98, 53, 68, 66, 2, -56, 115, 17, -56, 90, -124

.queue MEM_E0
        READ    0 -> E0
        NOP     12
        WRITE   W7 -> 0x10
        HALT
.queue MEM_E1
        NOP     1
        READ    0 -> E1
        NOP     10
        WRITE   W6 -> 0x10
        HALT
.queue MEM_E2
        NOP     2
        READ    0 -> E2
        NOP     8
        WRITE   W5 -> 0x10
        HALT
.queue MEM_E3
        NOP     3
        READ    0 -> E3
        NOP     6
        WRITE   W4 -> 0x10
        HALT
.queue SXM_E
        NOP     5
        TRANS   E0 -> W4
        HALT
