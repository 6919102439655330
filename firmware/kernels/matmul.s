; int8 matrix multiply through the MXM: C[4x8] = A[4x8] @ B[8x8], int32 results (ulx3s, VL = 8:
; the MXM is 8x8).
;
; Floorplan (ulx3s): MEM_W3 0 | MEM_W2 1 | MEM_W1 2 | MEM_W0 3 | VXM 4 |
;                    MEM_E0 5 | MEM_E1 6 | MEM_E2 7 | MEM_E3 8 | SXM_E 9 | MXM_E 10
;
; Weights go in by columns: word c of MEM_E3 is column c of B (lane r holds B[r][c]).
;   (a READ at t is seen h hops away at t + 2 + h: ulx3s holds the read word a cycle)
;   MEM_E3 reads columns at 0..7 -> E0 at the MXM (2 hops) at 4..11: LW at 4..11, IW at 12
;   MEM_E2 reads rows of A at 8..11 -> E1 at the MXM (3 hops) at 13..16: ABC into slots 0..3
;   an ABC at t accumulates at t + T + 1 = t + 5 (18..21); ACC at 18..21 sees each slot
;   just written and emits it at 19..22 westward on the SG4 group W0..W3;
;   plane i is written by one MEM slice each, 10 - pos hops away:
;   MEM_E3 (W0) at 21..24, MEM_E2 (W1) at 22..25, MEM_E1 (W2) at 23..26, MEM_E0 (W3) at 24..27.
; The last HALT is MEM_E0's at 28: 28 + T = 32 cycles.
.config ulx3s
.output c, MEM_E3/MEM_E2/MEM_E1/MEM_E0, 0x20, 4, i32

; B, one column per word
.data   MEM_E3, 0x0, 127, 108, -14, -91, -65, -72, 89, -9
.data   MEM_E3, 0x1, 109, 125, -73, 11, 92, -113, -24, 0
.data   MEM_E3, 0x2, 19, -3, -45, -110, -83, -18, 67, 7
.data   MEM_E3, 0x3, -8, -35, 46, -48, -32, 71, -23, 34
.data   MEM_E3, 0x4, -4, 48, 76, 96, -62, 44, 117, -4
.data   MEM_E3, 0x5, -65, -33, 112, -50, -88, -120, 31, -117
.data   MEM_E3, 0x6, -122, 51, 81, 41, -95, -44, 5, -9
.data   MEM_E3, 0x7, 15, 114, -82, 113, 51, -87, 1, 65
; A, one row per word
.data   MEM_E2, 0x0, 102, -105, -6, 71, -111, 0, 10, -31
.data   MEM_E2, 0x1, -54, 57, 57, 14, 28, 76, 67, 84
.data   MEM_E2, 0x2, -72, -54, 25, 55, 117, -73, -103, 0
.data   MEM_E2, 0x3, 127, -46, 49, -16, 40, 70, -96, -19

.queue MEM_E3
        READ    0 -> E0
        REPEAT  7, 1, 1
        NOP     13
        WRITE   W0 -> 0x20
        REPEAT  3, 1, 1
        HALT
.queue MEM_E2
        NOP     8
        READ    0 -> E1
        REPEAT  3, 1, 1
        NOP     10
        WRITE   W1 -> 0x20
        REPEAT  3, 1, 1
        HALT
.queue MEM_E1
        NOP     23
        WRITE   W2 -> 0x20
        REPEAT  3, 1, 1
        HALT
.queue MEM_E0
        NOP     24
        WRITE   W3 -> 0x20
        REPEAT  3, 1, 1
        HALT
.queue MXM_E
        NOP     4
        LW      E0, 0, 1
        REPEAT  7, 1, 1
        IW
        ABC     E1, 0
        REPEAT  3, 1, 1
        NOP     1
        ACC     0 -> W0
        REPEAT  3, 1, 1
        HALT
