"""Reference inputs: the genome FASTA, the annotation (GTF/GFF3) and its tables, gene lists, and the reference report."""
