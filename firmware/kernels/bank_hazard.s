; A bank hazard the assembler cannot see: an RW whose read and write addresses walk
; together under REPEAT until both land in bank 1 (ulx3s: 1024 words per bank, so bank 1
; starts at 0x400).
;   cycle 0: read 0x3FE (bank 0), write 0x400 (bank 1)   fine
;   cycle 1: read 0x3FF (bank 0), write 0x401 (bank 1)   fine
;   cycle 2: read 0x400 (bank 1), write 0x402 (bank 1)   BANK_CONFLICT: neither happens
; Every queue stops from cycle 3, so H = 3 and the program takes 3 + T = 7 cycles.
.config ulx3s
.data   MEM_E0, 0x3FE, 1, 2, 3, 4

.queue MEM_E0
        RW      0x3FE -> E0, W1 -> 0x400
        REPEAT  3, 1, 1
        HALT
.queue MEM_W0
        NOP     50
        HALT
