import os

# Rich wraps tables to the terminal; a wide virtual terminal keeps names whole in captured output.
os.environ["COLUMNS"] = "200"
