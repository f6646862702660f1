"""The dataset: row schema and roles, labels, sampling, features, the builder, the dataset folder and its writer."""
