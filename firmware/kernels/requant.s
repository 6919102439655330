; An int32 requantize chain in the VXM, ALU to ALU without going back to MEM (ulx3s):
;   y = relu(requant(x + BIAS))   with requant = clamp(RNE((x+BIAS) * MULT / 2**SHIFT) + ZP)
;
; Floorplan (ulx3s): SXM_W 0 | MEM_W3 1 | MEM_W2 2 | MEM_W1 3 | MEM_W0 4 | VXM 5 |
;                    MEM_E0 6 | MEM_E1 7 | MEM_E2 8 | MEM_E3 9 | SXM_E 10 | MXM_E 11
;
; x is int32: byte plane i of each vector lives in MEM_W<i> and rides stream E<i>, so the four
; planes meet at the VXM as the SG4 group E0..E3. MEM_W<i> is i + 1 hops from the VXM:
;   MEM_W3 reads at 0..3, MEM_W2 at 1..4, MEM_W1 at 2..5, MEM_W0 at 3..6 -> E0..E3 at 5..8
;   ALU0 ADD.i32 at 5..8; ALU1 REQUANT reads ALU0 at 8..11; ALU2 RELU reads ALU1 at 11..14
;   and emits E4 at 14..17; MEM_E0 (1 hop) writes at 15..18, HALT at 19: 19 + T = 23 cycles.
.config ulx3s
.equ    BIAS, 1234
.equ    MULT, 11184811
.equ    SHIFT, 32
.equ    ZP, -5
.output y, MEM_E0, 0x40, 4, i8

.data   MEM_W0, 0x0, -49, 37, 27, -85, -58, 33, 59, 101, 82, 81, 107, -25, 28, -76, 31, -103
.data   MEM_W0, 0x1, 44, 61, 106, 126, 110, 93, -36, 4, 55, -12, -8, -27, -27, 70, 64, -48
.data   MEM_W0, 0x2, -106, 99, 107, -124, -83, 75, 77, -3, 99, 118, 103, -88, 88, -10, -108, 127
.data   MEM_W0, 0x3, -9, 54, -124, -33, 9, -5, -65, -84, 31, -9, 91, 77, -54, 120, 120, -1
.data   MEM_W1, 0x0, -123, 125, 25, -37, 51, 99, -112, 41, 98, 19, -75, -126, -125, 70, 38, -59
.data   MEM_W1, 0x1, -2, -64, 119, 60, -126, -22, 28, -16, -30, -66, -116, 66, 111, 82, -59, -5
.data   MEM_W1, 0x2, -106, -7, 124, 107, 118, 117, 103, -73, -30, -128, -36, -69, -108, -75, 101, -106
.data   MEM_W1, 0x3, 18, 23, -127, -77, -113, 91, -115, 109, 115, 105, 98, -96, 111, -20, -58, -75
.data   MEM_W2, 0x0, -1, 0, 0, -1, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1
.data   MEM_W2, 0x1, -1, -1, -1, 0, -1, -1, 0, -1, -1, -1, -1, 0, 0, 0, -1, -1
.data   MEM_W2, 0x2, -1, -1, -1, -1, -1, 0, 0, -1, -1, 0, -1, -1, 0, -1, -1, 0
.data   MEM_W2, 0x3, 0, 0, -1, -1, 0, 0, -1, 0, 0, 0, 0, -1, 0, -1, -1, -1
.data   MEM_W3, 0x0, -1, 0, 0, -1, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1
.data   MEM_W3, 0x1, -1, -1, -1, 0, -1, -1, 0, -1, -1, -1, -1, 0, 0, 0, -1, -1
.data   MEM_W3, 0x2, -1, -1, -1, -1, -1, 0, 0, -1, -1, 0, -1, -1, 0, -1, -1, 0
.data   MEM_W3, 0x3, 0, 0, -1, -1, 0, 0, -1, 0, 0, 0, 0, -1, 0, -1, -1, -1

.queue MEM_W3
        READ    0 -> E3
        REPEAT  3, 1, 1
        HALT
.queue MEM_W2
        NOP     1
        READ    0 -> E2
        REPEAT  3, 1, 1
        HALT
.queue MEM_W1
        NOP     2
        READ    0 -> E1
        REPEAT  3, 1, 1
        HALT
.queue MEM_W0
        NOP     3
        READ    0 -> E0
        REPEAT  3, 1, 1
        HALT
.queue VXM0
        NOP     5
        ADD.i32 E0, #BIAS
        REPEAT  3, 1
        HALT
.queue VXM1
        NOP     8
        REQUANT ALU0, mult=MULT, shift=SHIFT, zp=ZP
        REPEAT  3, 1
        HALT
.queue VXM2
        NOP     11
        RELU.i8 ALU1 -> E4
        REPEAT  3, 1
        HALT
.queue MEM_E0
        NOP     15
        WRITE   E4 -> 0x40
        REPEAT  3, 1, 1
        HALT
