"""The papers that the claims cite, each once: authors, year, title and venue.

A claim's ``source`` names the paper and the place in it (a figure, a proof, a section) or
says "derived" when the claim follows from the paper's equations without being stated there.
"""

from __future__ import annotations

__all__ = [
    "AKROUT_2019", "ALMEIDA_1987", "BARTUNOV_2018", "BENGIO_FISCHER_2015", "HINTON_2007",
    "HINTON_MCCLELLAND_1988", "HINTON_WAKE_SLEEP_1995", "LABORIEUX_2021", "LEE_2015", "LIAO_2016",
    "LILLICRAP_2016", "MEULEMANS_2020", "MILLIDGE_2020", "MOVELLAN_1991", "NOKLAND_2016",
    "PINEDA_1987", "ROSENBAUM_2022", "RUMELHART_1986", "SCELLIER_BENGIO_2017",
    "SCELLIER_BENGIO_2019", "SONG_2020", "WERFEL_2005", "WHITTINGTON_BOGACZ_2017", "WILLIAMS_1992",
    "XIE_SEUNG_2003",
]

RUMELHART_1986 = ("Rumelhart, Hinton & Williams 1986, \"Learning representations by back-propagating "
                  "errors\", Nature 323:533–536")
ALMEIDA_1987 = ("Almeida 1987, \"A learning rule for asynchronous perceptrons with feedback in a "
                "combinatorial environment\", IEEE First International Conference on Neural Networks")
PINEDA_1987 = ("Pineda 1987, \"Generalization of back-propagation to recurrent neural networks\", "
               "Physical Review Letters 59:2229")
LILLICRAP_2016 = ("Lillicrap, Cownden, Tweed & Akerman 2016, \"Random synaptic feedback weights support "
                  "error backpropagation for deep learning\", Nature Communications 7:13276 (arXiv:1411.0247)")
NOKLAND_2016 = ("Nøkland 2016, \"Direct feedback alignment provides learning in deep neural networks\", "
                "NIPS 2016 (arXiv:1609.01596)")
AKROUT_2019 = ("Akrout, Wilson, Humphreys, Lillicrap & Tweed 2019, \"Deep learning without weight "
               "transport\", NeurIPS 2019 (arXiv:1904.05391)")
LIAO_2016 = ("Liao, Leibo & Poggio 2016, \"How important is weight symmetry in backpropagation?\", "
             "AAAI 2016 (arXiv:1510.05067)")
LEE_2015 = ("Lee, Zhang, Fischer & Bengio 2015, \"Difference target propagation\", ECML PKDD 2015 "
            "(arXiv:1412.7525)")
BARTUNOV_2018 = ("Bartunov, Santoro, Richards, Marris, Hinton & Lillicrap 2018, \"Assessing the scalability "
                 "of biologically-motivated deep learning algorithms and architectures\", NeurIPS 2018 "
                 "(arXiv:1807.04587)")
MEULEMANS_2020 = ("Meulemans, Carzaniga, Suykens, Sacramento & Grewe 2020, \"A theoretical framework for "
                  "target propagation\", NeurIPS 2020 (arXiv:2006.14331)")
SCELLIER_BENGIO_2017 = ("Scellier & Bengio 2017, \"Equilibrium propagation: bridging the gap between "
                        "energy-based models and backpropagation\", Frontiers in Computational "
                        "Neuroscience 11:24 (arXiv:1602.05179)")
SCELLIER_BENGIO_2019 = ("Scellier & Bengio 2019, \"Equivalence of equilibrium propagation and recurrent "
                        "backpropagation\", Neural Computation 31(2):312–329")
LABORIEUX_2021 = ("Laborieux, Ernoult, Scellier, Bengio, Grollier & Querlioz 2021, \"Scaling equilibrium "
                  "propagation to deep ConvNets by drastically reducing its gradient estimator bias\", "
                  "Frontiers in Neuroscience 15:633674 (arXiv:2006.03824)")
MOVELLAN_1991 = ("Movellan 1991, \"Contrastive Hebbian learning in the continuous Hopfield model\", "
                 "Connectionist Models: Proceedings of the 1990 Summer School")
XIE_SEUNG_2003 = ("Xie & Seung 2003, \"Equivalence of backpropagation and contrastive Hebbian learning in "
                  "a layered network\", Neural Computation 15(2):441–454")
BENGIO_FISCHER_2015 = ("Bengio & Fischer 2015, \"Early inference in energy-based models approximates "
                       "back-propagation\", arXiv:1510.02777")
WHITTINGTON_BOGACZ_2017 = ("Whittington & Bogacz 2017, \"An approximation of the error backpropagation "
                           "algorithm in a predictive coding network with local Hebbian synaptic "
                           "plasticity\", Neural Computation 29(5):1229–1262")
MILLIDGE_2020 = ("Millidge, Tschantz & Buckley 2020, \"Predictive coding approximates backprop along "
                 "arbitrary computation graphs\", arXiv:2006.04182")
SONG_2020 = ("Song, Lukasiewicz, Xu & Bogacz 2020, \"Can the brain do backpropagation? Exact implementation "
             "of backpropagation in predictive coding networks\", NeurIPS 2020")
ROSENBAUM_2022 = ("Rosenbaum 2022, \"On the relationship between predictive coding and backpropagation\", "
                  "PLoS ONE 17(3):e0266102 (its Torch2PC code)")
WILLIAMS_1992 = ("Williams 1992, \"Simple statistical gradient-following algorithms for connectionist "
                 "reinforcement learning\", Machine Learning 8:229–256")
WERFEL_2005 = ("Werfel, Xie & Seung 2005, \"Learning curves for stochastic gradient descent in linear "
               "feedforward networks\", Neural Computation 17(12):2699–2718")
HINTON_MCCLELLAND_1988 = ("Hinton & McClelland 1988, \"Learning representations by recirculation\", "
                          "Neural Information Processing Systems (NIPS 1987)")
HINTON_WAKE_SLEEP_1995 = ("Hinton, Dayan, Frey & Neal 1995, \"The wake-sleep algorithm for unsupervised "
                          "neural networks\", Science 268:1158–1161")
HINTON_2007 = ("Hinton 2007, \"How to do backpropagation in a brain\", invited talk, NIPS 2007 Deep "
               "Learning Workshop")
