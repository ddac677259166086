from learnlab.cli import entry

entry()
