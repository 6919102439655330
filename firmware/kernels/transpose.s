; SXM transpose: 2 streams x 2 lanes per tile, turned around (ulx3s, L = 2, VL = 8).
;   result stream i, lane k*2 + j  =  source stream j, lane k*2 + i
;
; Floorplan (ulx3s): MEM_W3 0 | MEM_W2 1 | MEM_W1 2 | MEM_W0 3 | VXM 4 |
;                    MEM_E0 5 | MEM_E1 6 | MEM_E2 7 | MEM_E3 8 | SXM_E 9 | MXM_E 10
;
; Source vector j sits in MEM_E<j> and rides E<j> to SXM_E (9 - pos hops):
;   (a READ at t is seen h hops away at t + 2 + h: ulx3s holds the read word a cycle)
;   MEM_E0 reads at 0 (4 hops), MEM_E1 at 1 (3 hops) -> both at SXM_E at 6.
;   TRANS at 6 emits at 6 + T = 10 westward on W2..W3;
;   MEM_E1 (3 hops) writes W2 at 13, MEM_E0 (4 hops) writes W3 at 14.
; The last HALT is MEM_E0's at 15: 15 + T = 19 cycles.
.config ulx3s
.output t0, MEM_E1, 0x10, 1, i8
.output t1, MEM_E0, 0x10, 1, i8

.data   MEM_E0, 0x0, -8, -23, 71, 50, -30, 16, -50, -100
.data   MEM_E1, 0x0, -69, 94, 34, 3, -94, -41, -48, -3

.queue MEM_E0
        READ    0 -> E0
        NOP     13
        WRITE   W3 -> 0x10
        HALT
.queue MEM_E1
        NOP     1
        READ    0 -> E1
        NOP     11
        WRITE   W2 -> 0x10
        HALT
.queue SXM_E
        NOP     6
        TRANS   E0 -> W2
        HALT
