// A behavioural model of the ECP5 sysDSP multiplier MULT18X18D, in the modes the
// gateware instantiates (rtl/mxm.py, weighted_product): A unregistered, B
// unregistered or in its input register, no pipeline register, the product in the
// output register. The registers are clocked by CLK0, reset synchronously by RST0,
// and enabled by CE0 or CE1. Any other register setting stops the simulation, so the
// model cannot stand in silently for a mode it does not describe.
//
// Written from Lattice's description of the block (the ECP5 sysDSP usage guide):
// P = A x B, each operand signed when its SIGNED pin is high;
// C, SOURCEA/SOURCEB (cascade and shift) are not used and must be low. Yosys ships
// only a black box of this cell, so the tests simulate the design's ECP5 netlist with
// this file (tests/test_rtl_mxm.py).
module MULT18X18D (
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CE0, CE1, RST0,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output P34, P35
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter RESETMODE = "SYNC";
    parameter GSR = "ENABLED";

    initial begin
        if (REG_INPUTA_CLK != "NONE" || REG_INPUTC_CLK != "NONE" || REG_PIPELINE_CLK != "NONE")
            $fatal(1, "MULT18X18D model: input registers A, C and the pipeline register are not modelled");
        if (REG_INPUTB_CLK != "NONE" && (REG_INPUTB_CLK != "CLK0" || REG_INPUTB_RST != "RST0"
                || (REG_INPUTB_CE != "CE0" && REG_INPUTB_CE != "CE1")))
            $fatal(1, "MULT18X18D model: input register B only on CLK0, RST0, CE0 or CE1");
        if (REG_OUTPUT_CLK != "CLK0" || REG_OUTPUT_RST != "RST0" || RESETMODE != "SYNC"
                || (REG_OUTPUT_CE != "CE0" && REG_OUTPUT_CE != "CE1"))
            $fatal(1, "MULT18X18D model: the output register only on CLK0, RST0, CE0 or CE1, synchronous reset");
    end

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    wire [17:0] c = {C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0};
    wire b_ce = REG_INPUTB_CE == "CE1" ? CE1 : CE0;
    wire p_ce = REG_OUTPUT_CE == "CE1" ? CE1 : CE0;
    reg [17:0] b_reg = 18'd0;
    wire [17:0] b_op = REG_INPUTB_CLK == "NONE" ? b : b_reg;
    wire signed [18:0] sa = {SIGNEDA & a[17], a};
    wire signed [18:0] sb = {SIGNEDB & b_op[17], b_op};
    wire signed [37:0] product = sa * sb;

    reg [35:0] p = 36'd0;
    always @(posedge CLK0) begin
        if (SOURCEA !== 1'b0 || SOURCEB !== 1'b0 || c !== 18'd0)
            $fatal(1, "MULT18X18D model: SOURCEA, SOURCEB and C must be low");
        if (RST0) begin
            b_reg <= 18'd0;
            p <= 36'd0;
        end else begin
            if (b_ce)
                b_reg <= b;
            if (p_ce)
                p <= product[35:0];
        end
    end
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
endmodule
