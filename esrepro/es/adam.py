"""Adam (Kingma and Ba 2015, the form of their section 2 with the bias correction folded into
the step size), as in the reference code es_distributed/optimizers.py."""

import numpy as np


class Adam:
    """Adam over a flat float32 parameter vector; the state is plain arrays (checkpointable).

    Parameters
    ----------
    dim : int
        Number of parameters.
    stepsize : float
        alpha; the paper's value is 0.01.
    beta1, beta2, epsilon : float
        0.9, 0.999 and 1e-8 in the paper's runs.

    Attributes
    ----------
    m, v : ndarray of float32, shape (dim,)
        First and second moment estimates.
    t : int
        Number of updates done.
    """

    def __init__(self, dim: int, stepsize: float = 0.01, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8):
        self.stepsize, self.beta1, self.beta2, self.epsilon = stepsize, beta1, beta2, epsilon
        self.m = np.zeros(dim, dtype=np.float32)
        self.v = np.zeros(dim, dtype=np.float32)
        self.t = 0

    def step(self, grad: np.ndarray) -> np.ndarray:
        """Update the moments with a descent gradient and return the step to add to theta.

        ``a = stepsize * sqrt(1 - beta2^t) / (1 - beta1^t)``, ``m = beta1 m + (1 - beta1) g``,
        ``v = beta2 v + (1 - beta2) g^2``, ``step = -a m / (sqrt(v) + epsilon)``.

        Parameters
        ----------
        grad : ndarray of float32, shape (dim,)
            Gradient of the loss to minimise (for ES: minus the return gradient plus L2 decay).

        Returns
        -------
        ndarray of float32, shape (dim,)
        """
        self.t += 1
        a = self.stepsize * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * (grad * grad)
        return (-a * self.m / (np.sqrt(self.v) + self.epsilon)).astype(np.float32)
