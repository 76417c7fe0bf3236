"""Networks: timm backbones behind one interface (`backbones.MERNet`), the flow networks (`ststnet`,
`off_apexnet`), the Lightning module (`module`) and gradual unfreezing (`unfreeze`).

Import the submodule you need (timm and lightning are slow to import).
"""
