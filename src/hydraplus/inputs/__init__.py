"""What users bring, read in hydraplus' conventions: teachers (modules, files, their outputs: `contracts`,
`teachers`) and data (tensors, arrays, files, folders: `arrays`). Never imports the pipeline or the API."""
