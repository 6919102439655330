; An int32 requantize chain in the VXM, ALU to ALU without going back to MEM (ulx3s, VL = 8):
;   y = relu(requant(x + BIAS))   with requant = clamp(RNE((x+BIAS) * MULT / 2**SHIFT) + ZP)
;   REQUANT runs on ALU 1: on ulx3s only ALU 1 has the multiplier (vxm_mul_alus).
;
; Floorplan (ulx3s): MEM_W3 0 | MEM_W2 1 | MEM_W1 2 | MEM_W0 3 | VXM 4 |
;                    MEM_E0 5 | MEM_E1 6 | MEM_E2 7 | MEM_E3 8 | SXM_E 9 | MXM_E 10
;
; x is int32: byte plane i of each vector lives in MEM_W<i> and rides stream E<i>, so the four
; planes meet at the VXM as the SG4 group E0..E3. MEM_W<i> is i + 1 hops from the VXM:
;   (a READ at t is seen h hops away at t + 2 + h: ulx3s holds the read word a cycle)
;   MEM_W3 reads at 0..3, MEM_W2 at 1..4, MEM_W1 at 2..5, MEM_W0 at 3..6 -> E0..E3 at 6..9
;   ALU0 ADD.i32 at 6..9; ALU1 REQUANT reads ALU0 at 9..12; ALU0 again, RELU, reads ALU1
;   at 12..15 (its ADD results were read at 9..12) and emits E0 at 15..18 (the group's
;   bytes on E0 passed the VXM at 6..9, so the stream is free again);
;   MEM_E0 (1 hop) writes at 16..19, HALT at 20: 20 + T = 24 cycles.
.config ulx3s
.equ    BIAS, 1234
.equ    MULT, 11184811
.equ    SHIFT, 32
.equ    ZP, -5
.output y, MEM_E0, 0x40, 4, i8

.data   MEM_W0, 0x0, 31, -110, -8, 64, 63, -30, -5, -18
.data   MEM_W0, 0x1, 121, -50, 92, -126, -43, 31, 10, -110
.data   MEM_W0, 0x2, -43, 92, 113, 53, 44, -59, 42, -43
.data   MEM_W0, 0x3, -15, -60, -111, -65, -8, -58, 87, 29
.data   MEM_W1, 0x0, -17, 123, -5, -81, 56, -39, 113, -103
.data   MEM_W1, 0x1, 49, -125, -69, 11, 66, 7, 72, -16
.data   MEM_W1, 0x2, -49, -52, -11, -122, -49, -97, 80, 15
.data   MEM_W1, 0x3, 30, -71, -114, -66, -105, 79, -33, 37
.data   MEM_W2, 0x0, -1, 0, -1, -1, 0, -1, 0, -1
.data   MEM_W2, 0x1, 0, -1, -1, 0, 0, 0, 0, -1
.data   MEM_W2, 0x2, -1, -1, -1, -1, -1, -1, 0, 0
.data   MEM_W2, 0x3, 0, -1, -1, -1, -1, 0, -1, 0
.data   MEM_W3, 0x0, -1, 0, -1, -1, 0, -1, 0, -1
.data   MEM_W3, 0x1, 0, -1, -1, 0, 0, 0, 0, -1
.data   MEM_W3, 0x2, -1, -1, -1, -1, -1, -1, 0, 0
.data   MEM_W3, 0x3, 0, -1, -1, -1, -1, 0, -1, 0

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
        NOP     6
        ADD.i32 E0, #BIAS
        REPEAT  3, 1
        NOP     2
        RELU.i8 ALU1 -> E0
        REPEAT  3, 1
        HALT
.queue VXM1
        NOP     9
        REQUANT ALU0, mult=MULT, shift=SHIFT, zp=ZP
        REPEAT  3, 1
        HALT
.queue MEM_E0
        NOP     16
        WRITE   E0 -> 0x40
        REPEAT  3, 1, 1
        HALT
