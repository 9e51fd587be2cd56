"""ViTPose Mocap pose server: frames in, versioned pose packets out over UDP."""

__version__ = "0.1.0"
