from imageprov.cli.main import app

app(prog_name="imageprov")
