from imageprov.cli.main import run

run()
