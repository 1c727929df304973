"""The classifier: ``mlp`` (our float32 network with sklearn's maths), ``balance`` (class weights, logit
adjustment), ``blas`` (threads and GEMM throughput), ``train`` (the epoch loop with prefetch and early
stopping), ``export`` (to and from sklearn / pyspacer models), ``spacer`` (the pyspacer trainer and
``train()``)."""
