"""Fine-tuning: a pretrained DDPM U-Net (or the same architecture from scratch) trained as a
segmenter on a labelled folder, then evaluated (Dice) and used to predict label maps.

``labelled`` finds and checks (image, label) pairs, ``grid`` moves labels and predictions
between a file's grid and the model's, ``dataset`` serves the cases, ``segmenter`` builds the
model from pretrained weights, ``losses`` holds Dice + cross-entropy and the Dice score,
``trainer`` is the loop, ``inference`` predicts and evaluates, ``study`` compares pretrained
with scratch over label budgets (``study_plot`` draws it), ``cli`` the subcommands.
Importing this package loads nothing heavy (the CLI registers its subcommands from it).
"""
