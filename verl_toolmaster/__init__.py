"""verl-toolmaster: ToolMaster's trial-and-execution tool learning as a verl 0.9.1 add-on."""

__version__ = "0.1.0"
