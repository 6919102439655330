; int8 matrix multiply through the MXM: C[4x16] = A[4x16] @ B[16x16], int32 results (ulx3s).
;
; Floorplan (ulx3s): SXM_W 0 | MEM_W3 1 | MEM_W2 2 | MEM_W1 3 | MEM_W0 4 | VXM 5 |
;                    MEM_E0 6 | MEM_E1 7 | MEM_E2 8 | MEM_E3 9 | SXM_E 10 | MXM_E 11
;
; Weights go in by columns: word c of MEM_E3 is column c of B (lane r holds B[r][c]).
;   MEM_E3 reads columns at 0..15 -> E0 at the MXM (2 hops) at 3..18: LW at 3..18, IW at 19
;   MEM_E2 reads rows of A at 16..19 -> E1 at the MXM (3 hops) at 20..23: ABC into slots 0..3
;   an ABC at t accumulates at t + T + 1 = t + 5 (25..28); ACC at 25..28 sees each slot
;   just written and emits it at 26..29 westward on the SG4 group W0..W3;
;   plane i is written by one MEM slice each, 11 - pos hops away:
;   MEM_E3 (W0) at 28..31, MEM_E2 (W1) at 29..32, MEM_E1 (W2) at 30..33, MEM_E0 (W3) at 31..34.
; The last HALT is MEM_E0's at 35: 35 + T = 39 cycles.
.config ulx3s
.output c, MEM_E3/MEM_E2/MEM_E1/MEM_E0, 0x20, 4, i32

; B, one column per word
.data   MEM_E3, 0x0, 12, -9, 78, -124, -8, 86, -27, -71, -59, 14, -107, -85, -102, 52, -69, 27
.data   MEM_E3, 0x1, -93, -9, 50, 45, 104, -53, 41, 40, 12, 69, -108, 55, -74, 122, 73, 92
.data   MEM_E3, 0x2, -123, -100, 9, 85, 67, -68, 45, -21, -5, 112, -110, -122, -14, 62, 18, -37
.data   MEM_E3, 0x3, 22, -55, 36, 55, 4, 14, 102, 86, -23, -41, -12, -3, -110, -116, -108, 107
.data   MEM_E3, 0x4, 104, -22, -65, 95, -101, -75, -78, 6, -124, 66, 0, 55, 126, -71, -79, 13
.data   MEM_E3, 0x5, -128, 116, -102, 38, 11, 93, -99, -101, 65, 92, 2, 5, -53, 59, -21, -44
.data   MEM_E3, 0x6, 89, -79, -123, 116, -58, -46, 117, 92, 66, 80, -9, 60, -56, -9, 108, 12
.data   MEM_E3, 0x7, -53, 25, -58, -14, -5, -75, 124, 31, 103, 38, -118, -107, -92, 3, 18, 127
.data   MEM_E3, 0x8, -89, -56, -36, 105, 92, 68, -74, 81, 43, 118, 21, -27, 62, -16, -77, 1
.data   MEM_E3, 0x9, -80, -1, 20, -117, -107, 5, 9, 82, -65, -115, 102, 89, 68, 92, -1, -2
.data   MEM_E3, 0xa, -67, -21, 69, 106, 108, -15, 52, 115, 18, 39, 6, -43, 48, -89, -20, 113
.data   MEM_E3, 0xb, -92, 50, 54, 3, -13, 0, 40, 50, 62, 27, 125, 44, -91, 42, -103, 31
.data   MEM_E3, 0xc, -96, 41, 34, 75, -82, 108, -7, -34, 25, -57, 2, 108, 107, -26, -5, 9
.data   MEM_E3, 0xd, 124, -18, 25, -6, -86, -119, -31, 99, 15, 23, 72, 100, 10, 123, 77, -83
.data   MEM_E3, 0xe, -91, 38, 123, -100, 28, 27, -24, -127, 66, -70, -18, 49, -91, -60, -19, 123
.data   MEM_E3, 0xf, -55, -128, -101, -4, -127, 101, 59, 63, 38, -111, -43, -99, 50, -20, -68, -113
; A, one row per word
.data   MEM_E2, 0x0, 52, -65, 63, -105, -80, 28, 111, -113, -112, 41, 94, 65, 82, -100, 17, -117
.data   MEM_E2, 0x1, -103, -22, 95, 125, -31, 120, -128, -63, 30, 15, -34, -66, -107, -46, -49, 100
.data   MEM_E2, 0x2, -40, 114, 102, 56, -116, 109, 54, 126, -122, -65, 31, -113, -11, 113, 35, 38
.data   MEM_E2, 0x3, 52, -46, -105, -107, -115, -72, 99, -107, 21, -115, 118, -76, -98, -109, 93, -41

.queue MEM_E3
        READ    0 -> E0
        REPEAT  15, 1, 1
        NOP     12
        WRITE   W0 -> 0x20
        REPEAT  3, 1, 1
        HALT
.queue MEM_E2
        NOP     16
        READ    0 -> E1
        REPEAT  3, 1, 1
        NOP     9
        WRITE   W1 -> 0x20
        REPEAT  3, 1, 1
        HALT
.queue MEM_E1
        NOP     30
        WRITE   W2 -> 0x20
        REPEAT  3, 1, 1
        HALT
.queue MEM_E0
        NOP     31
        WRITE   W3 -> 0x20
        REPEAT  3, 1, 1
        HALT
.queue MXM_E
        NOP     3
        LW      E0, 0, 1
        REPEAT  15, 1, 1
        IW
        ABC     E1, 0
        REPEAT  3, 1, 1
        NOP     1
        ACC     0 -> W0
        REPEAT  3, 1, 1
        HALT
