# CMP Studio on CPU: `docker build -t cmp-studio .` then
# `docker run --rm -p 7860:7860 -v cmp-hf:/data/hf cmp-studio` (see README.md, "Docker").
# The same file serves a Hugging Face Docker Space (uid 1000, port 7860).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Hugging Face Docker Spaces run the container as uid 1000; owning our files as that
# user keeps a local `docker run` and a Space identical. /data/hf is created here so
# the volume mounted over it starts out writable by that user.
RUN useradd --create-home --uid 1000 user \
    && mkdir -p /data/hf \
    && chown -R user:user /data

USER 1000
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    HF_HOME=/data/hf \
    OMP_WAIT_POLICY=PASSIVE \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    MPLBACKEND=Agg
WORKDIR /home/user/app

# Dependencies first, so editing code does not reinstall them.
# torch comes from PyTorch's CPU index: PyPI's Linux x86_64 wheel of the same version
# is the CUDA build, which drags in several GB of nvidia-* packages this CPU image
# never uses. The CPU wheel reports itself as 2.13.0+cpu, which satisfies the
# torch==2.13.0 pin in requirements.txt, so the second install leaves it alone.
COPY --chown=1000:1000 requirements.txt .
RUN pip install --no-cache-dir --user torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir --user -r requirements.txt

COPY --chown=1000:1000 . .

# Hub downloads (e.g. the ResNet-50 checkpoint) persist across containers.
VOLUME ["/data/hf"]
EXPOSE 7860

# python:3.11-slim has no curl; the standard library is enough to ask for the page.
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('GRADIO_SERVER_PORT', '7860'), timeout=8)"]

CMD ["python", "app.py"]
