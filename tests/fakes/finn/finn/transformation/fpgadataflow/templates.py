"""The board chain of FINN's custom_zynq_shell_template, shortened; %s is FINN's board argument."""

custom_zynq_shell_template = """
set BOARD %s
if {$BOARD == "ZCU104"} {
    set_property board_part xilinx.com:zcu104:part0:1.1 [current_project]
    set ZYNQ_TYPE "zynq_us+"
} elseif {$BOARD == "Pynq-Z1"} {
    set ZYNQ_TYPE "zynq_7000"
    set_property board_part www.digilentinc.com:pynq-z1:part0:1.0 [current_project]
} else {
    puts "Unrecognized board"
}
puts "ZYNQ_TYPE $ZYNQ_TYPE"
"""
