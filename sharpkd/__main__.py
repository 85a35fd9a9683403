from sharpkd.cli import main

main(prog_name="sharpkd")
