//! The registry of named datasets: where each comes from (publisher URLs with SHA-256, a Debian
//! package, the project's `../shared/data`), its license, size, classes and normalization.
//!
//! A file is *verified* when its SHA-256 is one of the recorded whole-file digests or, for a
//! `.gz` file, when the SHA-256 of its decompressed bytes is the recorded content digest. The
//! content digest matters because several copies of the MNIST-style files (Debian's, the ones in
//! `../shared/data`) were recompressed: their `.gz` bytes differ from the publisher's while the
//! data inside is identical. Content digests were computed here from those local copies; the
//! whole-file digests of publisher files are the ones published by widely used loaders
//! (torchvision, Keras, TFDS) and are recorded for a quick check before decompressing.
//!
//! Lookup order of a file: Debian package installed under `/`, Debian package unpacked into the
//! cache, `../shared/data`, then `<cache>/downloads/<dataset>/`. See `docs/datasets.md`.

use std::path::{Path, PathBuf};

use crate::cache::Locations;
use crate::download::{self, Digests};
use crate::{Error, Result};

/// What a registry entry is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A training distribution (Fashion-MNIST, CIFAR).
    InDistribution,
    /// An OOD test set of the paper or of the Fashion-MNIST benchmark.
    OodTest,
    /// An auxiliary outlier set for energy fine-tuning / Outlier Exposure.
    Outliers,
    /// Raw material the Fashion-MNIST OOD benchmark builder crops and resizes.
    Source,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::InDistribution => "in-dist",
            Role::OodTest => "ood-test",
            Role::Outliers => "outliers",
            Role::Source => "source",
        })
    }
}

/// One file of a dataset as its publisher distributes it.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    pub name: &'static str,
    /// Download URLs, tried in order.
    pub urls: &'static [&'static str],
    /// Accepted SHA-256 digests of the whole file (publisher's copy first).
    pub sha256: &'static [&'static str],
    /// SHA-256 of the decompressed bytes of a `.gz` file.
    pub content_sha256: Option<&'static str>,
    /// Size in bytes of the publisher's file, when known.
    pub size: Option<u64>,
}

impl FileSpec {
    pub fn digests(&self) -> Digests<'static> {
        Digests {
            sha256: self.sha256,
            gunzip_sha256: self.content_sha256,
        }
    }
}

/// Files of a dataset shipped inside a Debian package.
#[derive(Debug, Clone, Copy)]
pub struct DebianSource {
    pub package: &'static str,
    /// Directory inside the package (relative to `/`).
    pub dir: &'static str,
    /// Files (relative to `dir`) that must exist for the source to count as present.
    pub required: &'static [&'static str],
}

/// Fashion-MNIST training-set channel mean and standard deviation (pixels scaled to [0, 1]): the
/// one definition (ood-nn's input spec uses these).
pub const FMNIST_MEAN: f32 = 0.2860;
pub const FMNIST_STD: f32 = 0.3530;

/// Per-channel mean and standard deviation of pixels scaled to `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: &'static [f32],
    pub std: &'static [f32],
}

/// A named dataset or source.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    pub name: &'static str,
    pub title: &'static str,
    pub role: Role,
    pub license: &'static str,
    pub homepage: &'static str,
    pub files: &'static [FileSpec],
    pub debian: Option<DebianSource>,
    /// Sub-folder of `../shared/data` holding copies of `files`.
    pub shared_dir: Option<&'static str>,
    /// Number of images (of the files listed), when fixed.
    pub images: Option<u64>,
    /// `H x W x C` of the images as stored (0 = varies).
    pub shape: [usize; 3],
    pub classes: &'static [&'static str],
    pub normalization: Option<Normalization>,
    /// Total download size in bytes, when known.
    pub size: Option<u64>,
    pub note: &'static str,
}

const CIFAR_MEAN: &[f32] = &[125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0];
const CIFAR_STD: &[f32] = &[63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0];
const FASHION_CLASSES: &[&str] = &[
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const DIGITS: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const CIFAR10_CLASSES: &[&str] = &[
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

macro_rules! file {
    ($name:expr, [$($url:expr),* $(,)?], [$($sha:expr),* $(,)?], $content:expr, $size:expr) => {
        FileSpec { name: $name, urls: &[$($url),*], sha256: &[$($sha),*], content_sha256: $content, size: $size }
    };
}

static REGISTRY: &[Dataset] = &[
    Dataset {
        name: "fmnist",
        title: "Fashion-MNIST (Xiao, Rasul, Vollgraf 2017)",
        role: Role::InDistribution,
        license: "MIT",
        homepage: "https://github.com/zalandoresearch/fashion-mnist",
        files: &[
            file!("train-images-idx3-ubyte.gz", [concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "train-images-idx3-ubyte.gz")],
                ["3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"],
                Some("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"), None),
            file!("train-labels-idx1-ubyte.gz", [concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "train-labels-idx1-ubyte.gz")],
                ["a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"],
                Some("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"), None),
            file!("t10k-images-idx3-ubyte.gz", [concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "t10k-images-idx3-ubyte.gz")],
                ["346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"],
                Some("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"), None),
            file!("t10k-labels-idx1-ubyte.gz", [concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "t10k-labels-idx1-ubyte.gz")],
                ["67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"],
                Some("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"), None),
        ],
        debian: Some(DebianSource {
            package: "dataset-fashion-mnist",
            dir: "usr/share/datasets/fashion-mnist",
            required: &[],
        }),
        shared_dir: None,
        images: Some(70_000),
        shape: [28, 28, 1],
        classes: FASHION_CLASSES,
        normalization: Some(Normalization { mean: &[FMNIST_MEAN], std: &[FMNIST_STD] }),
        size: None,
        note: "60,000 train + 10,000 test; the benchmark splits train 55,000/5,000 (seeded)",
    },
    Dataset {
        name: "mnist-test",
        title: "MNIST test set (LeCun, Cortes, Burges)",
        role: Role::OodTest,
        license: "CC BY-SA 3.0",
        homepage: "http://yann.lecun.com/exdb/mnist/",
        files: &[
            file!("t10k-images-idx3-ubyte.gz",
                ["https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz", "http://yann.lecun.com/exdb/mnist/t10k-images-idx3-ubyte.gz"],
                ["8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b"],
                Some("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"), None),
            file!("t10k-labels-idx1-ubyte.gz",
                ["https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz", "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz"],
                ["f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c"],
                Some("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"), None),
        ],
        debian: None,
        shared_dir: Some("mnist"),
        images: Some(10_000),
        shape: [28, 28, 1],
        classes: DIGITS,
        normalization: Some(Normalization { mean: &[0.1307], std: &[0.3081] }),
        size: None,
        note: "OOD test set of the Fashion-MNIST benchmark",
    },
    Dataset {
        name: "notmnist-test",
        title: "notMNIST letters A-J, IDX conversion (davidflanagan/notMNIST-to-MNIST)",
        role: Role::OodTest,
        license: "MIT",
        homepage: "https://github.com/davidflanagan/notMNIST-to-MNIST",
        files: &[
            file!("t10k-images-idx3-ubyte.gz",
                ["https://raw.githubusercontent.com/davidflanagan/notMNIST-to-MNIST/master/t10k-images-idx3-ubyte.gz"],
                ["70ae9e06201f2827e5b0a3781a3169d735dd2efc69996b9eeaee7f10ed4044d7"],
                Some("8e7f38ae95cc8f48e0986175ffc9137e5007ebcf3d8fdf6656c904eb9dab198b"), Some(3_172_375)),
            file!("t10k-labels-idx1-ubyte.gz",
                ["https://raw.githubusercontent.com/davidflanagan/notMNIST-to-MNIST/master/t10k-labels-idx1-ubyte.gz"],
                ["1fa03836e01c862542f8eb83463bb951bebec6fcb3efa28dad748c6b38a9021b"],
                Some("5f8e6012f2ce730700d8d05fca098bc47f71d25b890e4bec7ac5ebfd614a4001"), Some(5_118)),
        ],
        debian: None,
        shared_dir: Some("notmnist"),
        images: Some(10_000),
        shape: [28, 28, 1],
        classes: &["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"],
        normalization: None,
        size: Some(3_177_493),
        note: "OOD test set of the Fashion-MNIST benchmark",
    },
    Dataset {
        name: "omniglot-small",
        title: "Omniglot, the two small background sets (Lake, Salakhutdinov, Tenenbaum 2015)",
        role: Role::OodTest,
        license: "MIT",
        homepage: "https://github.com/brendenlake/omniglot",
        files: &[
            file!("images_background_small1.zip",
                ["https://raw.githubusercontent.com/brendenlake/omniglot/master/python/images_background_small1.zip"],
                ["f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"], None, Some(1_319_022)),
            file!("images_background_small2.zip",
                ["https://raw.githubusercontent.com/brendenlake/omniglot/master/python/images_background_small2.zip"],
                ["3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f"], None, Some(1_580_917)),
        ],
        debian: None,
        shared_dir: Some("omniglot"),
        images: Some(5_840),
        shape: [105, 105, 1],
        classes: &[],
        normalization: None,
        size: Some(2_899_939),
        note: "2,720 + 3,120 black-on-white PNGs; the benchmark resizes to 28x28 and inverts",
    },
    Dataset {
        name: "cifar10",
        title: "CIFAR-10 (Krizhevsky 2009)",
        role: Role::InDistribution,
        license: "no explicit license (research use)",
        homepage: "https://www.cs.toronto.edu/~kriz/cifar.html",
        files: &[
            file!("cifar-10-binary.tar.gz", ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
                ["c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"], None, Some(170_052_171)),
        ],
        debian: None,
        shared_dir: None,
        images: Some(60_000),
        shape: [32, 32, 3],
        classes: CIFAR10_CLASSES,
        normalization: Some(Normalization { mean: CIFAR_MEAN, std: CIFAR_STD }),
        size: Some(170_052_171),
        note: "binary release; python release: cifar-10-python.tar.gz sha256 6d958be0...c001ce",
    },
    Dataset {
        name: "cifar100",
        title: "CIFAR-100 (Krizhevsky 2009)",
        role: Role::InDistribution,
        license: "no explicit license (research use)",
        homepage: "https://www.cs.toronto.edu/~kriz/cifar.html",
        files: &[
            file!("cifar-100-binary.tar.gz", ["https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"],
                ["58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec"], None, None),
        ],
        debian: None,
        shared_dir: None,
        images: Some(60_000),
        shape: [32, 32, 3],
        classes: &[],
        normalization: Some(Normalization { mean: CIFAR_MEAN, std: CIFAR_STD }),
        size: None,
        note: "100 fine / 20 coarse classes; python release: cifar-100-python.tar.gz sha256 85cd44d0...a677a7",
    },
    Dataset {
        name: "svhn",
        title: "SVHN cropped digits, test split (Netzer et al. 2011)",
        role: Role::OodTest,
        license: "non-commercial use",
        homepage: "http://ufldl.stanford.edu/housenumbers/",
        files: &[
            file!("test_32x32.mat", ["http://ufldl.stanford.edu/housenumbers/test_32x32.mat"],
                ["cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"], None, None),
        ],
        debian: None,
        shared_dir: None,
        images: Some(26_032),
        shape: [32, 32, 3],
        classes: DIGITS,
        normalization: None,
        size: None,
        note: "MATLAB v5; label 10 means digit 0",
    },
    Dataset {
        name: "textures-dtd",
        title: "Describable Textures Dataset (Cimpoi et al. 2014)",
        role: Role::OodTest,
        license: "research use",
        homepage: "https://www.robots.ox.ac.uk/~vgg/data/dtd/",
        files: &[
            file!("dtd-r1.0.1.tar.gz", ["https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"],
                ["e42855a52a4950a3b59612834602aa253914755c95b0cff9ead6d07395f8e205"], None, None),
        ],
        debian: None,
        shared_dir: None,
        images: Some(5_640),
        shape: [0, 0, 3],
        classes: &[],
        normalization: None,
        size: None,
        note: "47 classes in sub-folders; the paper resizes the shorter side to 32 and center-crops 32",
    },
    Dataset {
        name: "places365",
        title: "Places365 test images, 256x256 (Zhou et al. 2017)",
        role: Role::OodTest,
        license: "research use",
        homepage: "http://places2.csail.mit.edu/",
        files: &[file!("test_256.tar", ["http://data.csail.mit.edu/places/places365/test_256.tar"], [], None, None)],
        debian: None,
        shared_dir: None,
        images: Some(328_500),
        shape: [256, 256, 3],
        classes: &[],
        normalization: None,
        size: None,
        note: "no published SHA-256; the code of record samples 10,000 images",
    },
    Dataset {
        name: "lsun-crop",
        title: "LSUN-Crop (ODIN release, Liang et al. 2018)",
        role: Role::OodTest,
        license: "research use",
        homepage: "https://github.com/facebookresearch/odin",
        files: &[file!("LSUN.tar.gz", ["https://www.dropbox.com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz?dl=1"], [], None, None)],
        debian: None,
        shared_dir: None,
        images: Some(10_000),
        shape: [36, 36, 3],
        classes: &[],
        normalization: None,
        size: None,
        note: "no published SHA-256; center-cropped to 32x32 by the paper's transform",
    },
    Dataset {
        name: "lsun-resize",
        title: "LSUN-Resize (ODIN release)",
        role: Role::OodTest,
        license: "research use",
        homepage: "https://github.com/facebookresearch/odin",
        files: &[file!("LSUN_resize.tar.gz", ["https://www.dropbox.com/s/moqh2wh8696c3yl/LSUN_resize.tar.gz?dl=1"], [], None, None)],
        debian: None,
        shared_dir: None,
        images: Some(10_000),
        shape: [32, 32, 3],
        classes: &[],
        normalization: None,
        size: None,
        note: "no published SHA-256",
    },
    Dataset {
        name: "isun",
        title: "iSUN (ODIN release)",
        role: Role::OodTest,
        license: "research use",
        homepage: "https://github.com/facebookresearch/odin",
        files: &[file!("iSUN.tar.gz", ["https://www.dropbox.com/s/ssz7qxfqae0cca5/iSUN.tar.gz?dl=1"], [], None, None)],
        debian: None,
        shared_dir: None,
        images: Some(8_925),
        shape: [32, 32, 3],
        classes: &[],
        normalization: None,
        size: None,
        note: "no published SHA-256",
    },
    Dataset {
        name: "tiny-images",
        title: "80 Million Tiny Images (Torralba, Fergus, Freeman 2008)",
        role: Role::Outliers,
        license: "withdrawn by its authors in 2020",
        homepage: "https://groups.csail.mit.edu/vision/TinyImages/",
        files: &[file!("tiny_images.bin", ["http://horatio.cs.nyu.edu/mit/tiny/data/tiny_images.bin"], [], None, Some(243_615_796_224))],
        debian: None,
        shared_dir: None,
        images: Some(79_302_017),
        shape: [32, 32, 3],
        classes: &[],
        normalization: None,
        size: Some(243_615_796_224),
        note: "withdrawn, no longer distributed; the paper's outlier set. Use 300k-random instead",
    },
    Dataset {
        name: "300k-random",
        title: "300K random images (Hendrycks et al., subset of 80M Tiny Images)",
        role: Role::Outliers,
        license: "as 80M Tiny Images (research use)",
        homepage: "https://github.com/hendrycks/outlier-exposure",
        files: &[file!("300K_random_images.npy", ["https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy"], [], None, None)],
        debian: None,
        shared_dir: None,
        images: Some(300_000),
        shape: [32, 32, 3],
        classes: &[],
        normalization: None,
        size: None,
        note: "N x 32 x 32 x 3 uint8 .npy; no published SHA-256",
    },
    Dataset {
        name: "gimp-patterns",
        title: "GIMP patterns (Debian gimp-data)",
        role: Role::Source,
        license: "GPL-3+",
        homepage: "https://packages.debian.org/bookworm/gimp-data",
        files: &[],
        debian: Some(DebianSource {
            package: "gimp-data",
            dir: "usr/share/gimp/2.0/patterns",
            required: &["Fabric/burlap.pat"],
        }),
        shared_dir: None,
        images: Some(58),
        shape: [0, 0, 0],
        classes: &[],
        normalization: None,
        size: Some(14_214_540),
        note: "tileable .pat textures: Textures OOD test set",
    },
    Dataset {
        name: "skimage-data",
        title: "scikit-image sample images (Debian python3-skimage)",
        role: Role::Source,
        license: "mostly public domain / CC0 (see skimage/data/README.txt)",
        homepage: "https://packages.debian.org/bookworm/python3-skimage",
        files: &[],
        debian: Some(DebianSource {
            package: "python3-skimage",
            dir: "usr/lib/python3/dist-packages/skimage/data",
            required: &["brick.png", "grass.png", "gravel.png", "astronaut.png", "camera.png", "chelsea.png"],
        }),
        shared_dir: None,
        images: None,
        shape: [0, 0, 0],
        classes: &[],
        normalization: None,
        size: Some(20_713_608),
        note: "textures (brick, grass, gravel) and photos: Textures and Photo-* OOD test sets",
    },
    Dataset {
        name: "sklearn-images",
        title: "scikit-learn sample images china.jpg, flower.jpg (Debian python3-sklearn)",
        role: Role::Source,
        license: "CC BY 2.0",
        homepage: "https://packages.debian.org/bookworm/python3-sklearn",
        files: &[],
        debian: Some(DebianSource {
            package: "python3-sklearn",
            dir: "usr/lib/python3/dist-packages/sklearn/datasets/images",
            required: &["china.jpg", "flower.jpg"],
        }),
        shared_dir: None,
        images: Some(2),
        shape: [427, 640, 3],
        classes: &[],
        normalization: None,
        size: Some(2_102_964),
        note: "photos: Photo-* OOD test sets",
    },
    Dataset {
        name: "openarena-textures",
        title: "OpenArena 0.8.1 textures (Debian openarena-081-textures)",
        role: Role::Source,
        license: "GPL-2+",
        homepage: "https://packages.debian.org/bookworm/openarena-081-textures",
        files: &[],
        debian: Some(DebianSource {
            package: "openarena-081-textures",
            dir: "usr/share/games/openarena/baseoa",
            required: &["pak4-textures.pk3"],
        }),
        shared_dir: None,
        images: Some(1_648),
        shape: [0, 0, 0],
        classes: &[],
        normalization: None,
        size: Some(93_727_900),
        note: "zip of TGA/JPG game textures: auxiliary outliers",
    },
    Dataset {
        name: "mate-backgrounds",
        title: "MATE desktop nature photos (Debian mate-backgrounds)",
        role: Role::Source,
        license: "GPL-2+",
        homepage: "https://packages.debian.org/bookworm/mate-backgrounds",
        files: &[],
        debian: Some(DebianSource {
            package: "mate-backgrounds",
            dir: "usr/share/backgrounds/mate/nature",
            required: &["Garden.jpg"],
        }),
        shared_dir: None,
        images: Some(12),
        shape: [0, 0, 3],
        classes: &[],
        normalization: None,
        size: Some(46_638_500),
        note: "large nature photos: auxiliary outliers",
    },
];

/// Every registered dataset, in display order.
pub fn all() -> &'static [Dataset] {
    REGISTRY
}

/// The dataset called `name`.
pub fn get(name: &str) -> Result<&'static Dataset> {
    REGISTRY
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Error::UnknownDataset {
            name: name.to_string(),
            known: REGISTRY
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Where a file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A Debian package installed system-wide.
    System,
    /// A Debian package unpacked into the cache.
    CacheDeb,
    /// `../shared/data`.
    Shared,
    /// `<cache>/downloads/<dataset>`.
    Downloads,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Place::System => "system package",
            Place::CacheDeb => "cached package",
            Place::Shared => "shared data",
            Place::Downloads => "download cache",
        })
    }
}

impl Dataset {
    /// Directories to look in for this dataset's files, in lookup order.
    pub fn search_dirs(&self, loc: &Locations) -> Vec<(PathBuf, Place)> {
        let mut dirs = Vec::new();
        if let Some(deb) = &self.debian {
            dirs.push((loc.system_root.join(deb.dir), Place::System));
            dirs.push((
                loc.cache.deb_package(deb.package).join(deb.dir),
                Place::CacheDeb,
            ));
        }
        if let (Some(shared), Some(sub)) = (&loc.shared_data, self.shared_dir) {
            dirs.push((shared.join(sub), Place::Shared));
        }
        if !self.files.is_empty() {
            dirs.push((loc.cache.downloads(self.name), Place::Downloads));
        }
        dirs
    }

    /// The directory holding this dataset: the first search directory in which every listed
    /// file (or, for a Debian source, every required file) exists.
    pub fn locate(&self, loc: &Locations) -> Option<(PathBuf, Place)> {
        let needed: Vec<&str> = if self.files.is_empty() {
            self.debian.map(|d| d.required.to_vec()).unwrap_or_default()
        } else {
            self.files.iter().map(|f| f.name).collect()
        };
        self.search_dirs(loc)
            .into_iter()
            .find(|(dir, _)| dir.is_dir() && needed.iter().all(|f| dir.join(f).is_file()))
    }

    /// Like [`Dataset::locate`], but a missing dataset is an error that says where it was looked
    /// for and how to get it.
    pub fn require(&self, loc: &Locations) -> Result<(PathBuf, Place)> {
        self.locate(loc).ok_or_else(|| Error::MissingSource {
            name: self.name.to_string(),
            tried: self.search_dirs(loc),
            how: self.how_to_get(),
        })
    }

    /// One line saying how to obtain this dataset.
    pub fn how_to_get(&self) -> String {
        match (&self.debian, self.files.is_empty()) {
            (Some(deb), true) => format!(
                "run scripts/fetch-sources.sh or `eood data fetch {}` (Debian package {}; needs apt-get and dpkg-deb)",
                self.name, deb.package
            ),
            (Some(deb), false) => format!(
                "run scripts/fetch-sources.sh (Debian package {}) or `eood data fetch {}` (publisher: {})",
                deb.package, self.name, self.homepage
            ),
            (None, _) => format!("run `eood data fetch {}` (publisher: {})", self.name, self.homepage),
        }
    }

    /// Checks every listed file of the dataset (where it is found) against its digests.
    /// Debian sources are checked for their required files (apt verifies the package itself).
    pub fn verify(&self, loc: &Locations) -> Result<Vec<FileCheck>> {
        let (dir, place) = self.require(loc)?;
        if self.files.is_empty() {
            return Ok(self
                .debian
                .iter()
                .flat_map(|d| d.required.iter())
                .map(|f| FileCheck {
                    path: dir.join(f),
                    place,
                    outcome: Outcome::Present,
                })
                .collect());
        }
        self.files
            .iter()
            .map(|f| {
                let path = dir.join(f.name);
                let outcome = download::verify_file(&path, &f.digests())?;
                Ok(FileCheck {
                    path,
                    place,
                    outcome,
                })
            })
            .collect()
    }
}

/// The result of checking one file.
#[derive(Debug, Clone)]
pub struct FileCheck {
    pub path: PathBuf,
    pub place: Place,
    pub outcome: Outcome,
}

/// How a file was found to be good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its SHA-256 is a recorded digest.
    FileDigest(String),
    /// The SHA-256 of its decompressed bytes is the recorded content digest.
    ContentDigest(String),
    /// No digest is recorded for it: here is its SHA-256, unchecked.
    Unchecked(String),
    /// A file of a Debian source (present; apt verified the package).
    Present,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::FileDigest(d) => write!(f, "ok (sha256 {d})"),
            Outcome::ContentDigest(d) => write!(f, "ok (decompressed sha256 {d})"),
            Outcome::Unchecked(d) => write!(f, "UNCHECKED, no recorded digest (sha256 {d})"),
            Outcome::Present => f.write_str("present"),
        }
    }
}

/// Fetches `ds` into the cache unless it is already present somewhere: publisher files are
/// downloaded (verified, resumable); Debian sources are fetched with `apt-get download` and
/// unpacked with `dpkg-deb -x` into `<cache>/sources/deb/<package>`.
pub fn fetch(ds: &Dataset, loc: &Locations, progress: bool) -> Result<(PathBuf, Place)> {
    if let Some(found) = ds.locate(loc) {
        return Ok(found);
    }
    if ds.files.is_empty() {
        let deb = ds
            .debian
            .ok_or_else(|| Error::Other(format!("{}: nothing to fetch", ds.name)))?;
        fetch_debian(deb.package, loc)?;
        return ds.require(loc);
    }
    let dir = loc.cache.downloads(ds.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for f in ds.files {
        let dest = dir.join(f.name);
        if dest.is_file() {
            continue;
        }
        let mut failures = Vec::new();
        for (k, url) in f.urls.iter().enumerate() {
            if k > 0 {
                // Mirrors may hold differently compressed copies: never resume one from another.
                let _ = std::fs::remove_file(download::part_path(&dest));
            }
            let req = download::Request {
                url,
                dest: &dest,
                digests: f.digests(),
                size: f.size,
                progress,
            };
            match download::download(&req) {
                Ok(_) => break,
                // A file that arrived but is wrong must not be retried from a mirror silently.
                Err(e @ Error::Checksum { .. }) => return Err(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if failures.len() == f.urls.len() {
            return Err(Error::Other(format!(
                "{}: every source failed ({}); copy the file into {} by hand and run `eood data verify {}`",
                f.name,
                failures.join("; "),
                dir.display(),
                ds.name
            )));
        }
    }
    ds.require(loc)
}

/// `apt-get download PACKAGE` + `dpkg-deb -x` into `<cache>/sources/deb/PACKAGE` (the same layout
/// as `scripts/fetch-sources.sh`, which also runs `apt-get update` on a fresh machine).
pub fn fetch_debian(package: &str, loc: &Locations) -> Result<PathBuf> {
    use std::process::Command;
    let root = loc.cache.deb_root();
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let work = tempfile_dir(&root)?;
    let run = |cmd: &mut Command, what: &str| -> Result<()> {
        let out = cmd
            .output()
            .map_err(|e| Error::Other(format!("{what}: cannot run: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(Error::Other(format!("{what} failed: {}", err.trim())));
        }
        Ok(())
    };
    let result = (|| {
        run(
            Command::new("apt-get")
                .args(["download", "-q", package])
                .current_dir(&work),
            "apt-get download",
        )?;
        let deb = std::fs::read_dir(&work)
            .map_err(|e| Error::io(&work, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| Error::Other(format!("apt-get download {package}: no .deb produced")))?;
        let unpacked = work.join("root");
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
            "dpkg-deb -x",
        )?;
        let dest = loc.cache.deb_package(package);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&unpacked, &dest).map_err(|e| Error::io(&dest, e))?;
        let sha = download::sha256_file(&deb)?;
        let version = Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let marker = root.join(format!("{package}.version"));
        // Same marker as scripts/fetch-sources.sh: written last, it means the unpack is complete.
        std::fs::write(&marker, format!("{version} {sha}\n")).map_err(|e| Error::io(&marker, e))?;
        Ok(dest)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn tempfile_dir(parent: &Path) -> Result<PathBuf> {
    let dir = parent.join(format!(".fetch.{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_digests_well_formed() {
        let mut names: Vec<_> = all().iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all().len());
        for d in all() {
            for f in d.files {
                for s in f.sha256.iter().chain(f.content_sha256.iter()) {
                    assert_eq!(s.len(), 64, "{}/{}", d.name, f.name);
                    assert!(s
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                }
                assert!(!f.urls.is_empty(), "{}/{} has no URL", d.name, f.name);
            }
            assert!(
                !d.files.is_empty() || d.debian.is_some(),
                "{} has no origin",
                d.name
            );
        }
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let e = get("nope").unwrap_err().to_string();
        assert!(
            e.contains("nope") && e.contains("fmnist") && e.contains("mnist-test"),
            "{e}"
        );
    }
}
